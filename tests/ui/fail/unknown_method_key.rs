#[birpc::rpc]
trait Service {
    #[rpc(nmae = "ping")]
    async fn ping(&self);
}

fn main() {}
