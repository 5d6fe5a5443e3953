// Every mistake is reported, each at its own token, and nothing else.
#[birpc::rpc]
trait Service {
    fn first(&self);
    async fn second(self);
    async fn third(&self, value: &u32);
}

fn main() {}
