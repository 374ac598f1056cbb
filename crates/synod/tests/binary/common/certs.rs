//! Certificates for the TLS tests, made fresh per test with rcgen: a CA and what it signs.

use super::Tls;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use std::path::{Path, PathBuf};

/// A CA and what it signed, as PEM files in one directory.
pub struct Authority {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Authority {
    pub fn new(name: &str) -> Authority {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("self-sign CA");
        Authority { cert, key }
    }

    pub fn write_ca(&self, path: &Path) {
        std::fs::write(path, self.cert.pem()).expect("write CA");
    }

    /// Signs a certificate for `names` with `usage`, its common name the first name; writes
    /// it and its key.
    pub fn issue(
        &self,
        names: &[&str],
        usage: &[ExtendedKeyUsagePurpose],
        cert: &Path,
        key: &Path,
    ) {
        let (cert_pem, key_pem) = self.sign(names[0], names, usage);
        std::fs::write(cert, cert_pem).expect("write cert");
        std::fs::write(key, key_pem).expect("write key");
    }

    /// Signs a certificate whose common name is `cn`, for `names`, with `usage`; writes it and
    /// its key as `dir/{cn}.pem` and `dir/{cn}-key.pem` and returns their paths.
    pub fn issue_named(
        &self,
        dir: &Path,
        cn: &str,
        names: &[&str],
        usage: &[ExtendedKeyUsagePurpose],
    ) -> (PathBuf, PathBuf) {
        let (cert, key) = (
            dir.join(format!("{cn}.pem")),
            dir.join(format!("{cn}-key.pem")),
        );
        let (cert_pem, key_pem) = self.sign(cn, names, usage);
        std::fs::write(&cert, cert_pem).expect("write cert");
        std::fs::write(&key, key_pem).expect("write key");
        (cert, key)
    }

    /// A certificate and its key, as PEM.
    fn sign(
        &self,
        cn: &str,
        names: &[&str],
        usage: &[ExtendedKeyUsagePurpose],
    ) -> (String, String) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = usage.to_vec();
        let pair = KeyPair::generate().expect("key");
        let signed = params
            .signed_by(&pair, &self.cert, &self.key)
            .expect("sign");
        (signed.pem(), pair.serialize_pem())
    }
}

/// Fresh certificates under `dir`, all from one CA: the members' for 127.0.0.1 (good for
/// serving and, between members, for dialing) and a client's.
pub fn certificates(dir: &Path, client_cert_auth: bool) -> Tls {
    let ca = Authority::new("synod test CA");
    let tls = Tls {
        ca: dir.join("ca.pem"),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server-key.pem"),
        client_cert: dir.join("client.pem"),
        client_key: dir.join("client-key.pem"),
        client: true,
        client_cert_auth,
        peer: false,
    };
    ca.write_ca(&tls.ca);
    ca.issue(
        &["127.0.0.1", "localhost"],
        &[
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
        &tls.server_cert,
        &tls.server_key,
    );
    ca.issue(
        &["synod-test-client"],
        &[ExtendedKeyUsagePurpose::ClientAuth],
        &tls.client_cert,
        &tls.client_key,
    );
    tls
}
