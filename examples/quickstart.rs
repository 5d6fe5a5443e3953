//! A server and a client in one process: the client calls the server, and the server calls the client back
//! during that call, over the same WebSocket connection.
//!
//! ```text
//! cargo run --example quickstart
//! ```

use birpc::prelude::*;

/// The server's methods: `greet` asks the client for its name before answering.
fn server_methods() -> Router {
    Router::new().method("greet", |ctx: Context, (greeting,): (String,)| async move {
        println!("server: greet({greeting:?}) called; asking the client who it is");
        let name: String = ctx
            .peer()
            .call("whoami", ())
            .await
            .map_err(|e| ErrorObject::internal_error().with_detail(e))?;
        println!("server: the client says it is {name:?}");
        Ok::<_, ErrorObject>(format!("{greeting}, {name}!"))
    })
}

/// The client's methods, which the server calls.
fn client_methods() -> Router {
    Router::new().method("whoami", |_: Context, _: NoParams| async {
        println!("client: the server asks who I am");
        Ok::<_, ErrorObject>("Ada")
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = Server::bind("127.0.0.1:0").await?.serve(|connection| {
        println!(
            "server: connection {} from {}",
            connection.id(),
            connection.remote_addr()
        );
        server_methods()
    });
    let url = format!("ws://{}", server.local_addr());
    println!("server: listening on {url}");

    let peer = Client::builder().router(client_methods()).connect(&url).await?;
    println!("client: connected; calling greet(\"Hello\")");
    let answer: String = peer.call("greet", ("Hello",)).await?;
    println!("client: the server answered {answer:?}");

    peer.close();
    let reason = peer.closed().await;
    println!("client: {reason}");
    server.shutdown().await;
    Ok(())
}
