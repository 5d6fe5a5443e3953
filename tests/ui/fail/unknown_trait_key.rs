#[birpc::rpc(namespase = "chat")]
trait Service {
    async fn ping(&self);
}

fn main() {}
