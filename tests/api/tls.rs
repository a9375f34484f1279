//! Verified TLS to PostgreSQL (`sslmode=verify-ca|verify-full`, `sslrootcert`), against a
//! cluster of the test's own presenting certificates the test made.

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName};
use openssl::x509::{X509, X509Builder, X509NameBuilder};
use serde_json::json;
use todo_api::http::dispatch;

use crate::common::*;

fn key() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
}

/// A certificate for `key`: a CA's (self-signed) when `issuer` is `None`, else a server's for
/// the DNS name `host` (and no IP address), signed by `issuer`.
fn certificate(name: &str, key: &PKey<Private>, host: &str, issuer: Option<(&X509, &PKey<Private>)>) -> X509 {
    let mut subject = X509NameBuilder::new().unwrap();
    subject.append_entry_by_text("CN", name).unwrap();
    let subject = subject.build();
    let mut cert = X509Builder::new().unwrap();
    cert.set_version(2).unwrap();
    let mut serial = BigNum::new().unwrap();
    serial.rand(64, MsbOption::MAYBE_ZERO, false).unwrap();
    cert.set_serial_number(&serial.to_asn1_integer().unwrap()).unwrap();
    cert.set_subject_name(&subject).unwrap();
    cert.set_pubkey(key).unwrap();
    cert.set_not_before(&Asn1Time::days_from_now(0).unwrap()).unwrap();
    cert.set_not_after(&Asn1Time::days_from_now(1).unwrap()).unwrap();
    let signer = match issuer {
        None => {
            cert.set_issuer_name(&subject).unwrap();
            cert.append_extension(BasicConstraints::new().critical().ca().build().unwrap()).unwrap();
            cert.append_extension(KeyUsage::new().critical().key_cert_sign().crl_sign().build().unwrap()).unwrap();
            key
        }
        Some((ca, ca_key)) => {
            cert.set_issuer_name(ca.subject_name()).unwrap();
            cert.append_extension(BasicConstraints::new().build().unwrap()).unwrap();
            cert.append_extension(ExtendedKeyUsage::new().server_auth().build().unwrap()).unwrap();
            let san = SubjectAlternativeName::new().dns(host).build(&cert.x509v3_context(Some(ca), None)).unwrap();
            cert.append_extension(san).unwrap();
            ca_key
        }
    };
    cert.sign(signer, MessageDigest::sha256()).unwrap();
    cert.build()
}

#[test]
fn the_database_certificate_is_checked_as_sslmode_asks() {
    let cluster = Cluster::start(); // with scripts/pg.sh's self-signed certificate for localhost
    let url = |host: &str, query: &str| format!("postgres://postgres@{host}:{}/postgres?{query}", cluster.port);
    let start = |database: &str, migration: &str| {
        let mut vars = base_env(migration);
        vars.insert("DATABASE_URL".into(), database.to_owned());
        vars.insert("DATABASE_MIGRATION_URL".into(), migration.to_owned());
        todo_api::start(&config(&vars), dispatch)
    };
    let refused = |database: &str, migration: &str, why: &str| {
        let Err(e) = start(database, migration) else { panic!("{database} (migrations: {migration}) must not start") };
        assert!(e.contains("certificate verify failed") && e.contains(why), "{e}");
        e
    };

    // A self-signed certificate: not trusted by the system's roots; `require` does not check.
    let e = refused(&url("localhost", "sslmode=verify-full"), &url("localhost", "sslmode=verify-full"), "self");
    assert!(e.starts_with("cannot connect to the database (DATABASE_MIGRATION_URL): "), "{e}");
    drop(start(&url("localhost", "sslmode=require"), &url("localhost", "sslmode=require")).unwrap());

    // Now a certificate for localhost from a CA of the test's own.
    let (ca_key, other_key, server_key) = (key(), key(), key());
    let ca = certificate("todo-api test CA", &ca_key, "", None);
    let other_ca = certificate("another CA", &other_key, "", None);
    let server = certificate("todo-api test server", &server_key, "localhost", Some((&ca, &ca_key)));
    // Beside the cluster's files, removed with them.
    let (ca_file, other_file) = (format!("{}/test-ca.pem", cluster.data), format!("{}/other-ca.pem", cluster.data));
    std::fs::write(&ca_file, ca.to_pem().unwrap()).unwrap();
    std::fs::write(&other_file, other_ca.to_pem().unwrap()).unwrap();
    // Written over the cluster's files, which keeps their owner and mode.
    std::fs::write(format!("{}/server.crt", cluster.data), server.to_pem().unwrap()).unwrap();
    std::fs::write(format!("{}/server.key", cluster.data), server_key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    cluster.stop();
    cluster.restart();

    // verify-full to the name on the certificate, with the CA as root: serves end to end, over TLS.
    let full = url("localhost", &format!("sslmode=verify-full&sslrootcert={ca_file}&application_name=tls-test"));
    let running = start(&full, &full).unwrap();
    let auth = format!("Authorization: Bearer {}\r\nConnection: close\r\n", token("u1"));
    let created = raw(running.addr, &request("POST", "/api/tasks", &auth, Some(&json!({"title": "verified"}))));
    assert_eq!(created.status, 201, "{}", String::from_utf8_lossy(&created.body));
    let listed = raw(running.addr, &request("GET", "/api/tasks", &auth, None)).json();
    assert_eq!(listed[0]["title"], "verified", "{listed}");
    let mut admin = postgres::Client::connect(&cluster.url(), postgres::NoTls).unwrap();
    let (tls, plain): (i64, i64) = {
        let row = admin
            .query_one(
                "SELECT count(*) FILTER (WHERE ssl), count(*) FILTER (WHERE NOT ssl)
                 FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) WHERE application_name = 'tls-test'",
                &[],
            )
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert!(tls >= 1 && plain == 0, "the pool's connections use TLS: {tls} with, {plain} without");
    drop(running);

    // verify-full to an address the certificate does not name: refused, by either URL.
    let wrong_host = url("127.0.0.1", &format!("sslmode=verify-full&sslrootcert={ca_file}"));
    let e = refused(&wrong_host, &wrong_host, "mismatch");
    assert!(e.starts_with("cannot connect to the database (DATABASE_MIGRATION_URL): "), "{e}");
    let e = refused(&wrong_host, &full, "mismatch");
    assert!(e.starts_with("cannot connect to the database (DATABASE_URL): "), "{e}");
    // verify-ca checks the chain but not the host; a CA that did not sign it is refused.
    drop(start(&url("127.0.0.1", &format!("sslmode=verify-ca&sslrootcert={ca_file}")), &full).unwrap());
    refused(&url("localhost", &format!("sslmode=verify-ca&sslrootcert={other_file}")), &full, "issuer");
    // The system's roots do not include the test's CA.
    refused(&url("localhost", "sslmode=verify-full"), &full, "issuer");
    // require encrypts without checking: any host, any issuer.
    drop(start(&url("127.0.0.1", "sslmode=require"), &url("127.0.0.1", "sslmode=require")).unwrap());
}
