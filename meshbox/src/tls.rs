//! Mutual TLS between the sidecars, as Istio's pod-to-pod leg carries: a
//! throwaway CA and one certificate per pod (SAN = the pod's IP), made with
//! openssl when the mesh is built.
use std::{
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::Command,
};

use super::{TestbedError, netns};

/// The files a sidecar needs.
#[derive(Clone, Debug)]
pub struct PodCerts {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// cert and key in one file (haproxy's `crt`).
    pub pem: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) -> Result<(), TestbedError> {
    netns::run(Command::new("openssl").current_dir(dir).args(args)).map(|_| ())
}

const EC: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];

pub fn make_ca(dir: &Path) -> Result<PathBuf, TestbedError> {
    let mut args = vec![
        "req",
        "-x509",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=meshbox-ca",
    ];
    args.extend(EC);
    args.extend(["-keyout", "ca.key", "-out", "ca.crt"]);
    openssl(dir, &args)?;
    Ok(dir.join("ca.crt"))
}

/// The identity a sidecar presents and its peer checks (Istio uses SPIFFE
/// names; a DNS name stands in for it here).
pub fn identity(workload: &str) -> String {
    format!("{workload}.meshbox.svc")
}

/// A certificate for pod `name` of `workload` at `ip`, signed by the CA in `dir`.
pub fn make_pod(
    dir: &Path,
    name: &str,
    workload: &str,
    ip: Ipv4Addr,
) -> Result<PodCerts, TestbedError> {
    let (key, csr, crt, ext) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.crt"),
        format!("{name}.ext"),
    );
    let mut args = vec!["req", "-nodes", "-subj"];
    let subj = format!("/CN={name}");
    args.push(&subj);
    args.extend(EC);
    args.extend(["-keyout", &key, "-out", &csr]);
    openssl(dir, &args)?;
    let io = |source| TestbedError::Io {
        what: format!("writing certificate files in {}", dir.display()),
        source,
    };
    std::fs::write(
        dir.join(&ext),
        format!(
            "subjectAltName=DNS:{},IP:{ip}\nextendedKeyUsage=serverAuth,clientAuth\n",
            identity(workload)
        ),
    )
    .map_err(io)?;
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-days",
            "1",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-extfile",
            &ext,
            "-out",
            &crt,
        ],
    )?;
    let pem = dir.join(format!("{name}.pem"));
    let mut both = std::fs::read(dir.join(&crt)).map_err(io)?;
    both.extend(std::fs::read(dir.join(&key)).map_err(io)?);
    std::fs::write(&pem, both).map_err(io)?;
    // The sidecars run as UID 1337 and must read their key.
    for f in [&key, &crt] {
        std::os::unix::fs::chown(dir.join(f), Some(super::intercept::PROXY_UID), None)
            .map_err(io)?;
    }
    std::os::unix::fs::chown(&pem, Some(super::intercept::PROXY_UID), None).map_err(io)?;
    Ok(PodCerts {
        ca: dir.join("ca.crt"),
        cert: dir.join(crt),
        key: dir.join(key),
        pem,
    })
}
