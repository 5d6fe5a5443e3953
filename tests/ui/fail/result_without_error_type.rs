type Result<T> = std::result::Result<T, String>;

#[birpc::rpc]
trait Service {
    async fn ping(&self) -> Result<u32>;
}

fn main() {}
