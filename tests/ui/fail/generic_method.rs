#[birpc::rpc]
trait Service {
    async fn echo<T: serde::Serialize>(&self, value: T) -> T;
}

fn main() {}
