#[birpc::rpc(openrpc, openrpc)]
trait Service {
    async fn ping(&self);
}

fn main() {}
