//! TLS with rustls: on the client port (etcd's `--cert-file`, `--key-file`,
//! `--trusted-ca-file`, `--client-cert-auth`) and between members (`--peer-cert-file`,
//! `--peer-key-file`, `--peer-trusted-ca-file`; the transport crate runs the connections).
//!
//! Handshakes run beside the accept loop, each bounded in time, so a client that connects and
//! says nothing (or speaks plain HTTP/2 to a TLS port) costs one task for a few seconds and
//! never holds up anyone else. A failed handshake closes that connection only.
//!
//! Certificates, keys and CAs are re-read when their files change (checked at each
//! handshake), so an operator rotates them without a restart, as with etcd. Files that no
//! longer make a valid configuration (half rewritten, a key that is not the certificate's)
//! are refused with a warning and the member keeps serving with the last good ones.

use crate::config::ClientTls;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// How long a client has to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most handshakes in progress at once; further connections wait to be accepted.
const HANDSHAKES_MAX: usize = 256;
/// Connections handshaken and not yet taken by the gRPC server.
const READY_QUEUE: usize = 64;

/// Why TLS cannot be set up from the files given.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file that cannot be read or holds no usable PEM of the kind needed.
    #[error("{flag} {path}: {why}")]
    File {
        /// The flag that named it.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong, and what to give instead.
        why: String,
    },
    /// The files are readable but do not make a TLS configuration.
    #[error("cannot serve TLS with these files: {0}")]
    Config(String),
}

fn file_error(flag: &'static str, path: &Path, why: impl Into<String>) -> TlsError {
    TlsError::File {
        flag,
        path: path.to_path_buf(),
        why: why.into(),
    }
}

fn certificates(flag: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(flag, path, format!("cannot read it: {e}")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(flag, path, format!("not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(file_error(
            flag,
            path,
            "holds no certificate; give a PEM file with at least one CERTIFICATE block",
        ));
    }
    Ok(certs)
}

fn private_key(flag: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        file_error(
            flag,
            path,
            format!("no usable private key ({e}); give a PEM file with a PRIVATE KEY block"),
        )
    })
}

fn trusted_roots(flag: &'static str, path: &Path) -> Result<Arc<rustls::RootCertStore>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in certificates(flag, path)? {
        roots
            .add(ca)
            .map_err(|e| file_error(flag, path, format!("not a usable CA: {e}")))?;
    }
    Ok(Arc::new(roots))
}

/// TLS between members from `tls`'s files, or why they do not make it. Both directions
/// present this member's certificate and require the other side's, chained to the trusted
/// CAs; the dialer also checks that the certificate names the address it dialed.
///
/// The files are re-read when they change (see [`Reloading`]).
pub fn peer(tls: &crate::config::PeerTls) -> Result<transport::PeerTls, TlsError> {
    let files = vec![
        tls.cert_file.clone(),
        tls.key_file.clone(),
        tls.trusted_ca_file.clone(),
    ];
    let tls = tls.clone();
    let reloading = Reloading::new("peer", files, move || peer_settings(&tls))?;
    Ok(transport::PeerTls::from_source(reloading))
}

impl transport::PeerTlsSource for Reloading<(TlsAcceptor, tokio_rustls::TlsConnector)> {
    fn acceptor(&self) -> TlsAcceptor {
        self.current().0
    }

    fn connector(&self) -> tokio_rustls::TlsConnector {
        self.current().1
    }
}

/// The peer acceptor and connector from `tls`'s files as they are now.
fn peer_settings(
    tls: &crate::config::PeerTls,
) -> Result<(TlsAcceptor, tokio_rustls::TlsConnector), TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certificates("--peer-cert-file", &tls.cert_file)?;
    let key = private_key("--peer-key-file", &tls.key_file)?;
    let roots = trusted_roots("--peer-trusted-ca-file", &tls.trusted_ca_file)?;
    let config_error =
        |e: rustls::Error| TlsError::Config(format!("--peer-cert-file and --peer-key-file: {e}"));
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        roots.clone(),
        provider.clone(),
    )
    .build()
    .map_err(|e| TlsError::Config(e.to_string()))?;
    let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain.clone(), key.clone_key())
        .map_err(config_error)?;
    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(config_error)?;
    // The peer protocol, so a member never mistakes a peer port for a client port.
    server.alpn_protocols = vec![PEER_ALPN.to_vec()];
    client.alpn_protocols = vec![PEER_ALPN.to_vec()];
    Ok((
        TlsAcceptor::from(Arc::new(server)),
        tokio_rustls::TlsConnector::from(Arc::new(client)),
    ))
}

/// The ALPN name of the peer protocol.
const PEER_ALPN: &[u8] = b"synod-peer/1";

/// The client port's acceptor from `tls`'s files, re-read when they change, or why the files
/// do not make one.
pub fn client_acceptor(tls: &ClientTls) -> Result<Reloading<TlsAcceptor>, TlsError> {
    let mut files = vec![tls.cert_file.clone(), tls.key_file.clone()];
    files.extend(tls.trusted_ca_file.clone());
    let tls = tls.clone();
    Reloading::new("client", files, move || acceptor(&tls))
}

/// The acceptor for `tls` from its files as they are now, or why the files do not make one.
pub fn acceptor(tls: &ClientTls) -> Result<TlsAcceptor, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certificates("--cert-file", &tls.cert_file)?;
    let key = private_key("--key-file", &tls.key_file)?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match (&tls.trusted_ca_file, tls.client_cert_auth) {
        (None, true) => {
            return Err(TlsError::Config(
                "--client-cert-auth needs --trusted-ca-file, the CAs client certificates must chain to"
                    .to_string(),
            ));
        }
        (None, false) => builder.with_no_client_auth(),
        // As etcd: trusted CAs mean client certificates are required, with or without
        // --client-cert-auth.
        (Some(ca_file), _) => {
            let roots = trusted_roots("--trusted-ca-file", ca_file)?;
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider)
                    .build()
                    .map_err(|e| TlsError::Config(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(format!("--cert-file and --key-file: {e}")))?;
    // gRPC runs over HTTP/2; /metrics, /health and /version also over HTTP/1.1, as etcd's.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The connections of `listener` that completed a TLS handshake with `acceptor`'s settings of
/// the moment.
pub fn incoming(
    listener: TcpListener,
    acceptor: Reloading<TlsAcceptor>,
) -> ReceiverStream<Result<TlsConnection, io::Error>> {
    let acceptor = Arc::new(acceptor);
    let (ready, rx) = mpsc::channel(READY_QUEUE);
    let handshakes = Arc::new(Semaphore::new(HANDSHAKES_MAX));
    tokio::spawn(async move {
        loop {
            let Ok(permit) = handshakes.clone().acquire_owned().await else {
                return;
            };
            let (tcp, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: say so, back off, go on.
                        tracing::warn!(error = %e, "cannot accept a client connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = ready.closed() => return,
            };
            let _ = tcp.set_nodelay(true);
            let (acceptor, ready) = (acceptor.clone(), ready.clone());
            tokio::spawn(async move {
                let _permit = permit;
                let acceptor = acceptor.current();
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let common_name = client_common_name(&stream);
                        let _ = ready
                            .send(Ok(TlsConnection {
                                stream,
                                common_name,
                            }))
                            .await;
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "client TLS handshake failed");
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "client TLS handshake timed out");
                    }
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

/// What the filesystem says of one file's content: it changes when the file is rewritten or
/// replaced (a rename or a symlink swap, as Kubernetes mounts secrets). `None`: unreadable.
type Stamp = Option<(std::time::SystemTime, u64, u64)>;

fn stamp(path: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len(), meta.ino()))
}

/// TLS settings built from files and built again when any of them changes. The check is a
/// `stat` per file at each handshake, far below the handshake's own cost.
pub struct Reloading<T> {
    /// "client" or "peer", for the log.
    what: &'static str,
    files: Vec<PathBuf>,
    build: Box<dyn Fn() -> Result<T, TlsError> + Send + Sync>,
    state: std::sync::Mutex<Loaded<T>>,
}

struct Loaded<T> {
    settings: T,
    /// The files' stamps when they were last read, whether or not they made settings: files
    /// that failed are not read again until they change again.
    stamps: Vec<Stamp>,
}

impl<T: Clone> Reloading<T> {
    /// Builds the settings from the files as they are now; failing here stops the member.
    pub fn new(
        what: &'static str,
        files: Vec<PathBuf>,
        build: impl Fn() -> Result<T, TlsError> + Send + Sync + 'static,
    ) -> Result<Reloading<T>, TlsError> {
        let stamps = files.iter().map(|f| stamp(f)).collect();
        let settings = build()?;
        Ok(Reloading {
            what,
            files,
            build: Box::new(build),
            state: std::sync::Mutex::new(Loaded { settings, stamps }),
        })
    }

    /// The settings for the next handshake: the files' as they are now if they changed and
    /// make valid settings, else the last good ones.
    pub fn current(&self) -> T {
        let stamps: Vec<Stamp> = self.files.iter().map(|f| stamp(f)).collect();
        // A panic while holding the lock cannot leave the settings half-replaced.
        let mut loaded = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if stamps != loaded.stamps {
            loaded.stamps = stamps;
            match (self.build)() {
                Ok(settings) => {
                    tracing::info!(
                        tls = self.what,
                        "TLS files changed; new connections use them"
                    );
                    loaded.settings = settings;
                }
                Err(e) => tracing::warn!(
                    tls = self.what,
                    error = %e,
                    "TLS files changed but do not make a valid configuration; \
                     still using the previous ones until the files are fixed"
                ),
            }
        }
        loaded.settings.clone()
    }
}

/// A client connection after its TLS handshake.
pub struct TlsConnection {
    stream: tokio_rustls::server::TlsStream<TcpStream>,
    /// The common name of the client's certificate, if it sent one (the handshake verified it
    /// against `--trusted-ca-file`).
    common_name: Option<String>,
}

/// What a request on a TLS client connection knows of it (in the request's extensions).
#[derive(Clone, Debug)]
pub struct ClientConnectInfo {
    /// The TCP connection.
    pub tcp: TcpConnectInfo,
    /// The common name of the client's verified certificate: with `--client-cert-auth` and
    /// auth on, the user of a request that carries no token (etcd's `AuthInfoFromTLS`).
    pub common_name: Option<String>,
}

/// The subject common name of the client's certificate (the first of its chain, the one the
/// handshake verified), as etcd takes it.
fn client_common_name(stream: &tokio_rustls::server::TlsStream<TcpStream>) -> Option<String> {
    let leaf = stream.get_ref().1.peer_certificates()?.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}

impl Connected for TlsConnection {
    type ConnectInfo = ClientConnectInfo;

    fn connect_info(&self) -> ClientConnectInfo {
        ClientConnectInfo {
            tcp: self.stream.get_ref().0.connect_info(),
            common_name: self.common_name.clone(),
        }
    }
}

impl AsyncRead for TlsConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Files {
        dir: tempfile::TempDir,
    }

    impl Files {
        fn new() -> Files {
            let dir = tempfile::tempdir().expect("temp dir");
            let pair = rcgen::KeyPair::generate().expect("key");
            let params =
                rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params");
            let cert = params.self_signed(&pair).expect("self-signed");
            std::fs::write(dir.path().join("cert.pem"), cert.pem()).expect("write");
            std::fs::write(dir.path().join("key.pem"), pair.serialize_pem()).expect("write");
            Files { dir }
        }

        fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }

        fn tls(&self, cert: &str, key: &str, ca: Option<&str>, auth: bool) -> ClientTls {
            ClientTls {
                cert_file: self.path(cert),
                key_file: self.path(key),
                trusted_ca_file: ca.map(|c| self.path(c)),
                client_cert_auth: auth,
            }
        }
    }

    /// A CA and a member certificate it signed for 127.0.0.1, as PEM files under `dir`.
    fn member_files(dir: &Path, ca_name: &str, member: &str) -> crate::config::PeerTls {
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, ca_name);
        let ca_cert = ca.self_signed(&ca_key).expect("CA");
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params");
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &ca_cert, &ca_key).expect("sign");
        let files = crate::config::PeerTls {
            cert_file: dir.join(format!("{member}.pem")),
            key_file: dir.join(format!("{member}-key.pem")),
            trusted_ca_file: dir.join(format!("{member}-ca.pem")),
        };
        std::fs::write(&files.cert_file, cert.pem()).expect("write");
        std::fs::write(&files.key_file, key.serialize_pem()).expect("write");
        std::fs::write(&files.trusted_ca_file, ca_cert.pem()).expect("write");
        files
    }

    /// Whether a member set up with `dialer` completes a TLS handshake with one set up with
    /// `acceptor`, over real loopback TCP.
    async fn handshake(dialer: &transport::PeerTls, acceptor: &transport::PeerTls) -> bool {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let accepting = acceptor.acceptor();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.expect("accept");
            accepting.accept(tcp).await.is_ok()
        });
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let name = rustls_pki_types::ServerName::IpAddress(addr.ip().into());
        let dialed = dialer.connector().connect(name, tcp).await;
        let accepted = server.await.expect("server task");
        dialed.is_ok() && accepted
    }

    #[tokio::test]
    async fn members_admit_each_other_only_with_certificates_from_the_trusted_ca() {
        let dir = tempfile::tempdir().expect("temp dir");
        let ours = member_files(dir.path(), "our CA", "n1");
        // n2 trusts our CA but holds a certificate from a CA of its own.
        let mut untrusted_cert = member_files(dir.path(), "n2's own CA", "n2");
        untrusted_cert.trusted_ca_file = ours.trusted_ca_file.clone();
        let stranger = member_files(dir.path(), "another CA", "n3");

        let n1 = peer(&ours).expect("n1");
        let n1_again = peer(&ours).expect("n1's twin");
        let n3 = peer(&stranger).expect("n3");
        assert!(handshake(&n1_again, &n1).await, "same CA: admitted");
        assert!(
            !handshake(&n3, &n1).await,
            "a dialer from another CA is refused"
        );
        assert!(
            !handshake(&n1, &n3).await,
            "an acceptor from another CA is refused"
        );
        // n2 trusts our CA but presents a certificate from its own: n1 refuses it.
        let n2 = peer(&untrusted_cert).expect("n2");
        assert!(
            !handshake(&n2, &n1).await,
            "a certificate from an untrusted CA"
        );
    }

    /// Replaces `to` with a copy of `from` the way tools rotating certificates do: a new file
    /// renamed over the old one.
    fn replace_with(to: &Path, from: &Path) {
        let staged = to.with_extension("staged");
        std::fs::copy(from, &staged).expect("stage");
        std::fs::rename(&staged, to).expect("rename over");
    }

    #[tokio::test]
    async fn peer_certificates_are_read_again_when_their_files_change() {
        let dir = tempfile::tempdir().expect("temp dir");
        let ours = member_files(dir.path(), "our CA", "n1");
        let stranger = member_files(dir.path(), "another CA", "n3");
        let n1 = peer(&ours).expect("n1");
        let n3 = peer(&stranger).expect("n3");
        assert!(!handshake(&n3, &n1).await, "another CA: refused");

        // n1's files now hold a certificate and CA of n3's authority: without a restart, n1
        // presents the new certificate and trusts the new CA.
        replace_with(&ours.cert_file, &stranger.cert_file);
        replace_with(&ours.key_file, &stranger.key_file);
        replace_with(&ours.trusted_ca_file, &stranger.trusted_ca_file);
        assert!(handshake(&n3, &n1).await, "dialed by the new CA's member");
        assert!(handshake(&n1, &n3).await, "dialing the new CA's member");

        // A rotation caught halfway (the key is not the certificate's) is refused and the
        // last good files serve on.
        let other = member_files(dir.path(), "a third CA", "n4");
        replace_with(&ours.key_file, &other.key_file);
        assert!(handshake(&n3, &n1).await, "the last good settings");
        assert!(handshake(&n1, &n3).await, "the last good settings, dialing");
    }

    #[test]
    fn a_client_acceptor_follows_its_files_and_keeps_the_last_good_ones() {
        let f = Files::new();
        let tls = f.tls("cert.pem", "key.pem", None, false);
        let reloading = client_acceptor(&tls).expect("acceptor");
        let served = |r: &Reloading<TlsAcceptor>| {
            let config = r.current();
            let key = config.config().cert_resolver.clone();
            format!("{key:?}")
        };
        let first = served(&reloading);
        assert_eq!(
            served(&reloading),
            first,
            "nothing changed, nothing re-read"
        );

        let other = Files::new();
        replace_with(&f.path("cert.pem"), &other.path("cert.pem"));
        // Halfway: the new certificate with the old key makes no configuration.
        assert_eq!(served(&reloading), first, "a mismatched pair is refused");
        replace_with(&f.path("key.pem"), &other.path("key.pem"));
        let second = served(&reloading);
        assert_ne!(second, first, "the new pair is served");
        std::fs::remove_file(f.path("key.pem")).expect("remove");
        assert_eq!(
            served(&reloading),
            second,
            "a missing file keeps the last good"
        );
    }

    fn refusal(tls: &ClientTls) -> String {
        match acceptor(tls) {
            Ok(_) => panic!("accepted {tls:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn good_files_make_an_acceptor_with_or_without_client_certificates() {
        let f = Files::new();
        assert!(acceptor(&f.tls("cert.pem", "key.pem", None, false)).is_ok());
        assert!(acceptor(&f.tls("cert.pem", "key.pem", Some("cert.pem"), true)).is_ok());
    }

    #[test]
    fn each_bad_file_is_named_with_its_flag_and_what_it_should_hold() {
        let f = Files::new();
        std::fs::write(f.path("garbage.pem"), "not PEM at all\n").expect("write");

        let e = refusal(&f.tls("missing.pem", "key.pem", None, false));
        assert!(
            e.contains("--cert-file") && e.contains("missing.pem"),
            "{e}"
        );
        let e = refusal(&f.tls("garbage.pem", "key.pem", None, false));
        assert!(
            e.contains("--cert-file") && e.contains("no certificate"),
            "{e}"
        );
        let e = refusal(&f.tls("cert.pem", "garbage.pem", None, false));
        assert!(e.contains("--key-file") && e.contains("PRIVATE KEY"), "{e}");
        // A key that is not the certificate's.
        let e = refusal(&f.tls("cert.pem", "cert.pem", None, false));
        assert!(e.contains("--key-file"), "{e}");
        let e = refusal(&f.tls("cert.pem", "key.pem", Some("garbage.pem"), true));
        assert!(e.contains("--trusted-ca-file"), "{e}");
        let e = refusal(&f.tls("cert.pem", "key.pem", None, true));
        assert!(
            e.contains("--client-cert-auth needs --trusted-ca-file"),
            "{e}"
        );
    }
}
