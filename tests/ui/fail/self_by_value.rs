#[birpc::rpc]
trait Service {
    async fn ping(self) -> u32;
}

fn main() {}
