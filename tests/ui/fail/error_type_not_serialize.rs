/// An error type without serde's derives.
#[derive(Debug)]
enum Oops {
    Broken,
}

#[birpc::rpc]
trait Service {
    async fn ping(&self) -> Result<u32, Oops>;
}

fn main() {}
