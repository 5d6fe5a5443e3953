#[birpc::rpc]
trait Service {
    fn ping(&self) -> u32;
}

fn main() {}
