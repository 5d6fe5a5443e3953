#[birpc::rpc(namespace = "chat")]
trait Service {
    async fn join(&self, room: String);
    #[rpc(name = "leave", aliases = ["join"])]
    async fn part(&self, room: String);
}

fn main() {}
