//! `#[rpc(openrpc)]` in a crate that depends on birpc alone: the types derive `birpc::JsonSchema` through
//! the re-export, and every kind of method is described.

use birpc::openrpc::Document;
use birpc::{Context, ErrorObject, ItemStream, Upload};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, birpc::JsonSchema)]
#[schemars(crate = "birpc::schemars")]
struct Hit {
    text: String,
}

#[derive(Serialize, Deserialize, birpc::JsonSchema)]
#[schemars(crate = "birpc::schemars")]
enum SearchError {
    Unavailable,
}

#[birpc::rpc(namespace = "search", openrpc)]
trait Search {
    async fn search(&self, ctx: &Context, query: String, limit: Option<u32>) -> Result<Vec<Hit>, SearchError>;
    #[rpc(notification)]
    async fn forget(&self, query: String);
    async fn raw(&self) -> Result<(), ErrorObject>;
    async fn follow(&self, query: String) -> Result<ItemStream<Hit, SearchError>, SearchError>;
    async fn index(&self, hits: Upload<Hit>) -> u64;
}

fn main() {
    let document = Document::new("Search", "1").server(SearchMethods::openrpc());
    assert_eq!(document.openrpc()["methods"].as_array().map(Vec::len), Some(5));
}
