//! The service trait is object-safe: an `Arc<dyn Trait>` serves, and implementations can be chosen at run
//! time.

use std::sync::Arc;

#[birpc::rpc]
pub trait Greeter {
    async fn greet(&self, name: String) -> String;
}

struct English;
struct French;

#[birpc::async_trait]
impl Greeter for English {
    async fn greet(&self, name: String) -> String {
        format!("Hello, {name}")
    }
}

#[birpc::async_trait]
impl Greeter for French {
    async fn greet(&self, name: String) -> String {
        format!("Bonjour, {name}")
    }
}

fn pick(french: bool) -> Arc<dyn Greeter> {
    if french { Arc::new(French) } else { Arc::new(English) }
}

fn main() {
    let router = pick(true).into_router();
    assert!(router.contains("greet"));
    let boxed: Box<dyn Greeter> = Box::new(English);
    let _ = Arc::<dyn Greeter>::from(boxed).into_router();
}
