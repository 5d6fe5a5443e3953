#[birpc::rpc]
trait Service {
    async fn ping(&mut self) -> u32;
}

fn main() {}
