//! The names most programs need: `use birpc::prelude::*;`.

pub use crate::{
    CallError, Client, Context, ErrorObject, ItemStream, NoParams, Params, Peer, PeerConfig, PeerHandle, Router,
    RpcError, Server, Subscription, Upload, rpc,
};
