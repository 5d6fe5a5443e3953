#[birpc::rpc]
trait Service {
    async fn ping(value: u32) -> u32;
}

fn main() {}
