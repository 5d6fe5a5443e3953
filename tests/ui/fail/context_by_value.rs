use birpc::Context;

#[birpc::rpc]
trait Service {
    async fn whoami(&self, ctx: Context) -> String;
}

fn main() {}
