//! A certificate authority and a server certificate made up for one test.

use std::path::Path;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// Writes `ca.crt`, `server.crt` and `server.key` (for 127.0.0.1 and localhost) into `dir`.
pub fn write_ca_and_server_cert(dir: &Path) {
    let ca_key = KeyPair::generate().expect("a CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "chorus test CA");
    let ca_cert = ca.self_signed(&ca_key).expect("a self-signed CA");
    let issuer = Issuer::new(ca, ca_key);

    let server_key = KeyPair::generate().expect("a server key");
    let server = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .expect("server parameters");
    let server_cert = server
        .signed_by(&server_key, &issuer)
        .expect("a server certificate");

    let write = |name: &str, pem: String| {
        std::fs::write(dir.join(name), pem).expect("writing a test certificate");
    };
    write("ca.crt", ca_cert.pem());
    write("server.crt", server_cert.pem());
    write("server.key", server_key.serialize_pem());
}
