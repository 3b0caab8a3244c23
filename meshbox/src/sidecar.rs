//! Sidecar proxies: real ones from Debian (nginx, haproxy) and the
//! ground-truth delay proxy. Each listens on 15006 (inbound, to the local
//! app) and 15001 (outbound, to the destination pod), with keepalive pools.
//! With `Routes::http2`, haproxy speaks h2c (HTTP/2, prior knowledge) on
//! every leg: app to 15001, sidecar to sidecar, sidecar to app.
use std::{net::SocketAddr, path::Path, process::Command, time::Duration};

use super::{
    intercept::{INBOUND_PORT, OUTBOUND_PORT},
    tls::PodCerts,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SidecarKind {
    Nginx,
    Haproxy,
    /// The delay fixture: holds each chunk for a set time and reports its own timing.
    DelayProxy,
}

impl SidecarKind {
    /// The process name discovery will see.
    pub fn comm(self) -> &'static str {
        match self {
            SidecarKind::Nginx => "nginx",
            SidecarKind::Haproxy => "haproxy",
            SidecarKind::DelayProxy => "profiler",
        }
    }
}

/// Where a sidecar forwards.
#[derive(Clone, Debug)]
pub struct Routes {
    /// The app in the same pod.
    pub inbound: SocketAddr,
    /// The destination pod (its sidecar intercepts it there).
    pub outbound: SocketAddr,
    /// Mutual TLS between sidecars: inbound listener and outbound upstream.
    pub tls: Option<PodCerts>,
    /// The identity the outbound upstream's certificate must carry.
    pub peer_identity: String,
    /// HTTP/2 on every leg (haproxy only): h2c in the clear, h2 by ALPN
    /// under mutual TLS.
    pub http2: bool,
}

/// Refuse HTTP/2 for sidecars that cannot carry it end to end here.
pub fn check_http2(kind: SidecarKind) -> Result<(), String> {
    match kind {
        SidecarKind::Haproxy => Ok(()),
        // nginx proxies to upstreams in HTTP/1.x only.
        SidecarKind::Nginx => Err(
            "HTTP/2 meshes need haproxy sidecars: nginx speaks only HTTP/1.x to its upstreams"
                .into(),
        ),
        SidecarKind::DelayProxy => Err(
            "HTTP/2 meshes need haproxy sidecars: the delay-proxy fixture is not an HTTP proxy"
                .into(),
        ),
    }
}

pub fn nginx_conf(dir: &Path, r: &Routes) -> String {
    let d = dir.display();
    let (listen_tls, upstream_scheme, upstream_tls) = match &r.tls {
        Some(t) => (
            format!(
                " ssl; ssl_certificate {}; ssl_certificate_key {}; ssl_client_certificate {}; \
                 ssl_verify_client on",
                t.cert.display(),
                t.key.display(),
                t.ca.display()
            ),
            "https",
            format!(
                " proxy_ssl_certificate {}; proxy_ssl_certificate_key {}; \
                 proxy_ssl_trusted_certificate {}; proxy_ssl_verify on; proxy_ssl_name {}; \
                 proxy_ssl_session_reuse on;",
                t.cert.display(),
                t.key.display(),
                t.ca.display(),
                r.peer_identity
            ),
        ),
        None => (String::new(), "http", String::new()),
    };
    format!(
        "worker_processes 2;\n\
         pid {d}/nginx.pid;\n\
         error_log {d}/nginx-error.log warn;\n\
         daemon off;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n\
         \x20 access_log off;\n\
         \x20 client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;\n\
         \x20 fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n\
         \x20 upstream inbound_app {{ server {inb}; keepalive 64; }}\n\
         \x20 upstream outbound_dst {{ server {outb}; keepalive 64; }}\n\
         \x20 server {{ listen {INBOUND_PORT}{listen_tls}; location / {{ proxy_pass http://inbound_app; \
         proxy_http_version 1.1; proxy_set_header Connection \"\"; }} }}\n\
         \x20 server {{ listen {OUTBOUND_PORT}; location / {{ proxy_pass {upstream_scheme}://outbound_dst; \
         proxy_http_version 1.1; proxy_set_header Connection \"\";{upstream_tls} }} }}\n\
         }}\n",
        inb = r.inbound,
        outb = r.outbound,
    )
}

pub fn haproxy_conf(r: &Routes) -> String {
    // Under TLS, HTTP/2 is also announced by ALPN, as a TLS peer expects.
    let alpn = if r.http2 { " alpn h2" } else { "" };
    let (bind_tls, server_tls) = match &r.tls {
        Some(t) => (
            format!(
                " ssl crt {} ca-file {} verify required{alpn}",
                t.pem.display(),
                t.ca.display()
            ),
            format!(
                " ssl crt {} ca-file {} verify required{alpn}",
                t.pem.display(),
                t.ca.display()
            ),
        ),
        None => (String::new(), String::new()),
    };
    // `proto h2` forces HTTP/2 without upgrade or ALPN: h2c on clear legs.
    let h2 = if r.http2 { " proto h2" } else { "" };
    format!(
        "global\n  maxconn 4096\n  nbthread 1\n\
         defaults\n  mode http\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n\
         \x20 option http-keep-alive\n  http-reuse always\n\
         frontend inbound\n  bind :{INBOUND_PORT}{bind_tls}{h2}\n  default_backend app\n\
         backend app\n  server app {inb}{h2}\n\
         frontend outbound\n  bind :{OUTBOUND_PORT}{h2}\n  default_backend dst\n\
         backend dst\n  server dst {outb}{server_tls}{h2}\n",
        inb = r.inbound,
        outb = r.outbound,
    )
}

/// The command that runs a sidecar in the foreground. `helper` is the
/// profiler binary (it carries the delay proxy).
pub fn command(
    kind: SidecarKind,
    dir: &Path,
    routes: &Routes,
    helper: &Path,
    delay: Duration,
) -> std::io::Result<Command> {
    if routes.http2 {
        check_http2(kind).map_err(std::io::Error::other)?;
    }
    match kind {
        SidecarKind::Nginx => {
            for sub in ["body", "proxy", "fcgi", "uwsgi", "scgi"] {
                std::fs::create_dir_all(dir.join(sub))?;
            }
            let conf = dir.join("nginx.conf");
            std::fs::write(&conf, nginx_conf(dir, routes))?;
            let mut c = Command::new("nginx");
            c.arg("-p")
                .arg(dir)
                .arg("-e")
                .arg(dir.join("nginx-error.log"))
                .arg("-c")
                .arg(conf);
            Ok(c)
        }
        SidecarKind::Haproxy => {
            let conf = dir.join("haproxy.cfg");
            std::fs::write(&conf, haproxy_conf(routes))?;
            let mut c = Command::new("haproxy");
            c.arg("-db").arg("-f").arg(conf);
            Ok(c)
        }
        SidecarKind::DelayProxy => {
            if routes.tls.is_some() {
                return Err(std::io::Error::other(
                    "the delay-proxy fixture speaks plain TCP; use nginx or haproxy for mutual TLS",
                ));
            }
            let mut c = Command::new(helper);
            c.args(["testbed", "delay-proxy"])
                .arg("--inbound-to")
                .arg(routes.inbound.to_string())
                .arg("--outbound-to")
                .arg(routes.outbound.to_string())
                .arg("--delay-us")
                .arg(delay.as_micros().to_string())
                .arg("--stats")
                .arg(dir.join("delay-proxy-stats.json"));
            Ok(c)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes() -> Routes {
        Routes {
            inbound: "127.0.0.1:8080".parse().expect("addr"),
            outbound: "10.244.0.11:8080".parse().expect("addr"),
            tls: None,
            peer_identity: "server.meshbox.svc".into(),
            http2: false,
        }
    }

    fn tls_routes() -> Routes {
        Routes {
            tls: Some(PodCerts {
                ca: "/c/ca.crt".into(),
                cert: "/c/p.crt".into(),
                key: "/c/p.key".into(),
                pem: "/c/p.pem".into(),
            }),
            ..routes()
        }
    }

    #[test]
    fn mutual_tls_on_the_pod_to_pod_leg_only() {
        let c = nginx_conf(Path::new("/tmp/x"), &tls_routes());
        assert!(c.contains("listen 15006 ssl; ssl_certificate /c/p.crt;"));
        assert!(c.contains("ssl_verify_client on"));
        assert!(c.contains("proxy_pass https://outbound_dst;"));
        assert!(c.contains("proxy_ssl_verify on; proxy_ssl_name server.meshbox.svc;"));
        // The app leg and the app's own call into 15001 stay plain.
        assert!(c.contains("proxy_pass http://inbound_app;"));
        assert!(c.contains("listen 15001;"));
        let h = haproxy_conf(&tls_routes());
        assert!(h.contains("bind :15006 ssl crt /c/p.pem ca-file /c/ca.crt verify required"));
        assert!(h.contains(
            "server dst 10.244.0.11:8080 ssl crt /c/p.pem ca-file /c/ca.crt verify required"
        ));
        assert!(h.contains("bind :15001\n"));
    }

    #[test]
    fn nginx_listens_on_both_ports_with_keepalive_pools() {
        let c = nginx_conf(Path::new("/tmp/x"), &routes());
        assert!(c.contains("listen 15006;") && c.contains("listen 15001;"));
        assert!(c.contains("server 127.0.0.1:8080; keepalive 64;"));
        assert!(c.contains("server 10.244.0.11:8080; keepalive 64;"));
        assert!(c.contains("proxy_http_version 1.1"));
        assert!(c.contains("pid /tmp/x/nginx.pid;"));
    }

    #[test]
    fn haproxy_routes_inbound_to_app_and_outbound_to_destination() {
        let c = haproxy_conf(&routes());
        assert!(c.contains(
            "bind :15006\n  default_backend app\nbackend app\n  server app 127.0.0.1:8080"
        ));
        assert!(c.contains(
            "bind :15001\n  default_backend dst\nbackend dst\n  server dst 10.244.0.11:8080"
        ));
        assert!(c.contains("http-reuse always"));
    }

    #[test]
    fn haproxy_http2_speaks_h2c_on_every_leg() {
        let h2 = Routes {
            http2: true,
            ..routes()
        };
        let c = haproxy_conf(&h2);
        assert!(c.contains("bind :15006 proto h2\n"));
        assert!(c.contains("server app 127.0.0.1:8080 proto h2\n"));
        assert!(c.contains("bind :15001 proto h2\n"));
        assert!(c.contains("server dst 10.244.0.11:8080 proto h2\n"));
        assert!(!c.contains("alpn"));
        // HTTP/1.1 meshes keep their config.
        assert!(!haproxy_conf(&routes()).contains("h2"));
    }

    #[test]
    fn haproxy_http2_under_mutual_tls_announces_h2_by_alpn() {
        let c = haproxy_conf(&Routes {
            http2: true,
            ..tls_routes()
        });
        assert!(c.contains(
            "bind :15006 ssl crt /c/p.pem ca-file /c/ca.crt verify required alpn h2 proto h2\n"
        ));
        assert!(c.contains(
            "server dst 10.244.0.11:8080 ssl crt /c/p.pem ca-file /c/ca.crt verify required \
             alpn h2 proto h2\n"
        ));
        assert!(c.contains("server app 127.0.0.1:8080 proto h2\n"));
    }

    #[test]
    fn http2_is_refused_for_sidecars_other_than_haproxy() {
        assert!(check_http2(SidecarKind::Haproxy).is_ok());
        for kind in [SidecarKind::Nginx, SidecarKind::DelayProxy] {
            let e = check_http2(kind).expect_err("refused");
            assert!(e.contains("haproxy"), "{e}");
            let h2 = Routes {
                http2: true,
                ..routes()
            };
            let err = command(
                kind,
                Path::new("/nonexistent"),
                &h2,
                Path::new("p"),
                Duration::ZERO,
            )
            .expect_err("refused");
            assert!(err.to_string().contains("HTTP/2"), "{err}");
        }
    }
}
