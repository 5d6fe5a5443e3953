use birpc::prelude::*;

#[rpc]
pub trait Greeter {
    async fn greet(&self, name: String) -> String;
}

struct English;

#[async_trait]
impl Greeter for English {
    async fn greet(&self, name: String) -> String {
        format!("Hello, {name}")
    }
}

fn main() {}
