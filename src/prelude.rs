//! The names most programs need: `use birpc::prelude::*;`.

pub use crate::{
    CallError, Client, Context, ErrorObject, ItemStream, NoParams, Params, Peer, PeerConfig, PeerHandle, Router,
    RpcError, Server, Subscription, Upload, rpc,
};
// Code written for earlier versions put `#[async_trait]` on impls: it now says to remove it.
#[doc(hidden)]
pub use crate::async_trait;
