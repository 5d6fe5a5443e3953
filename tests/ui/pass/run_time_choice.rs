//! Implementations are plain `async fn`s; one is chosen at run time through its router (the type-erased
//! form), and a shared implementation (`Arc<T>`) is a service too.

use std::sync::Arc;

use birpc::Router;

#[birpc::rpc]
pub trait Greeter {
    async fn greet(&self, name: String) -> String;
    /// A method with a body of its own in the trait.
    async fn greet_all(&self, names: Vec<String>) -> Vec<String> {
        let mut greetings = Vec::new();
        for name in names {
            greetings.push(self.greet(name).await);
        }
        greetings
    }
}

struct English;
struct French;

impl Greeter for English {
    async fn greet(&self, name: String) -> String {
        format!("Hello, {name}")
    }
}

impl Greeter for French {
    async fn greet(&self, name: String) -> String {
        format!("Bonjour, {name}")
    }
}

fn pick(french: bool) -> Router {
    if french { French.into_router() } else { English.into_router() }
}

/// A shared implementation, usable by the program and served at once.
fn shared<T: Greeter>(service: T) -> (Arc<T>, Router) {
    let service = Arc::new(service);
    (service.clone(), service.into_router())
}

fn main() {
    assert!(pick(true).contains("greet"));
    assert!(pick(false).contains("greet_all"));
    let (_english, router) = shared(English);
    assert!(router.contains("greet"));
}
