//! A server and a client in one process: the client calls the server, and the server calls the client back
//! during that call, over the same WebSocket connection.
//!
//! ```text
//! cargo run --example quickstart
//! ```

use birpc::prelude::*;

/// What the server exports.
#[birpc::rpc]
trait Greeter {
    /// Greets the caller, after asking it who it is.
    async fn greet(&self, ctx: &Context, greeting: String) -> String;
}

/// What the client exports, for the server to call.
#[birpc::rpc]
trait Caller {
    /// Who is calling?
    async fn whoami(&self) -> String;
}

struct GreeterService;

impl Greeter for GreeterService {
    async fn greet(&self, ctx: &Context, greeting: String) -> String {
        println!("server: greet({greeting:?}) called; asking the client who it is");
        // A typed stub of the client's service, over the caller's own connection.
        let caller = CallerClient::new(ctx.peer().clone());
        let name = caller.whoami().await.unwrap_or_else(|e| format!("stranger ({e})"));
        println!("server: the client says it is {name:?}");
        format!("{greeting}, {name}!")
    }
}

struct CallerService;

impl Caller for CallerService {
    async fn whoami(&self) -> String {
        println!("client: the server asks who I am");
        "Ada".to_owned()
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = Server::bind("127.0.0.1:0").await?.serve(|connection| {
        println!(
            "server: connection {} from {}",
            connection.id(),
            connection.remote_addr()
        );
        GreeterService.into_router()
    });
    let url = format!("ws://{}", server.local_addr());
    println!("server: listening on {url}");

    let peer = Client::builder()
        .router(CallerService.into_router())
        .connect(&url)
        .await?;
    let greeter = GreeterClient::new(peer.clone());
    println!("client: connected; calling greet(\"Hello\")");
    let answer = greeter.greet("Hello".to_owned()).await?;
    println!("client: the server answered {answer:?}");

    peer.close();
    let reason = peer.closed().await;
    println!("client: {reason}");
    server.shutdown().await;
    Ok(())
}
