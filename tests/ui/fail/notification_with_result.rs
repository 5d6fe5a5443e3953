#[birpc::rpc]
trait Service {
    #[rpc(notification)]
    async fn typing(&self, room: String) -> bool;
}

fn main() {}
