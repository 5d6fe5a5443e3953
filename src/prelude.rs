//! The names most programs need: `use birpc::prelude::*;`.

pub use crate::{
    CallError, Client, Context, ErrorObject, NoParams, Params, Peer, PeerConfig, PeerHandle, Router, RpcError, Server,
    async_trait, rpc,
};
