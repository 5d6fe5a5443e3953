//! `wss://` on both sides with rustls, and a certificate generated when the test runs.
#![cfg(feature = "tls")]

use std::sync::Arc;

use birpc::prelude::*;
use birpc::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use birpc::rustls::{self, ClientConfig, RootCertStore, ServerConfig};
use birpc::{ConnectError, Reconnect};

/// A self-signed certificate for `localhost`, and the TLS settings of a server using it and of a client
/// trusting it.
fn tls() -> (Arc<ServerConfig>, Arc<ClientConfig>) {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = CertificateDer::from(generated.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(generated.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(cert).unwrap();
    let client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(server), Arc::new(client))
}

#[tokio::test]
async fn calls_go_both_ways_over_wss() {
    let (server_tls, client_tls) = tls();
    let server = Server::builder()
        .tls(server_tls)
        .bind("127.0.0.1:0")
        .await
        .unwrap()
        .serve(|_| {
            Router::new().method("greet", |ctx: Context, (name,): (String,)| async move {
                let title: String = ctx
                    .peer()
                    .call("title", ())
                    .await
                    .map_err(|e| ErrorObject::internal_error().with_detail(e))?;
                Ok::<_, ErrorObject>(format!("{title} {name}"))
            })
        });
    let url = format!("wss://localhost:{}", server.local_addr().port());
    let client_methods = Router::new().method("title", |_: Context, _: NoParams| async { Ok::<_, ErrorObject>("Dr.") });
    let peer = Client::builder()
        .router(client_methods.clone())
        .tls(client_tls.clone())
        .connect(&url)
        .await
        .unwrap();
    assert_eq!(peer.call::<String>("greet", ("Who",)).await.unwrap(), "Dr. Who");

    // A reconnecting client over TLS too.
    let reconnecting = Client::builder()
        .router(client_methods)
        .tls(client_tls)
        .reconnect(Reconnect::default())
        .reconnecting(&url)
        .unwrap();
    reconnecting.connected().await.unwrap();
    assert_eq!(
        reconnecting.peer().call::<String>("greet", ("Ada",)).await.unwrap(),
        "Dr. Ada"
    );
    reconnecting.close();
    server.shutdown().await;
}

#[tokio::test]
async fn an_untrusted_certificate_is_refused() {
    let (server_tls, _) = tls();
    let (_, other_client) = tls();
    let server = Server::builder()
        .tls(server_tls)
        .bind("127.0.0.1:0")
        .await
        .unwrap()
        .serve(|_| Router::new());
    let url = format!("wss://localhost:{}", server.local_addr().port());
    let refused = Client::builder().tls(other_client).connect(&url).await;
    assert!(
        matches!(
            refused,
            Err(ConnectError::Tls(_) | ConnectError::Io(_) | ConnectError::Handshake(_))
        ),
        "{refused:?}"
    );
    // Plain ws:// to a TLS port does not get through either.
    let plain = Client::connect(&format!("ws://localhost:{}", server.local_addr().port())).await;
    assert!(plain.is_err());
    server.shutdown().await;
}
