//! Sidecar proxies: real ones from Debian (nginx, haproxy) and the
//! ground-truth delay proxy. Each listens on 15006 (inbound, to the local
//! app) and 15001 (outbound, to the destination pod), with keepalive pools.
use std::{net::SocketAddr, path::Path, process::Command, time::Duration};

use super::intercept::{INBOUND_PORT, OUTBOUND_PORT};

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
}

pub fn nginx_conf(dir: &Path, r: &Routes) -> String {
    let d = dir.display();
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
         \x20 server {{ listen {INBOUND_PORT}; location / {{ proxy_pass http://inbound_app; \
         proxy_http_version 1.1; proxy_set_header Connection \"\"; }} }}\n\
         \x20 server {{ listen {OUTBOUND_PORT}; location / {{ proxy_pass http://outbound_dst; \
         proxy_http_version 1.1; proxy_set_header Connection \"\"; }} }}\n\
         }}\n",
        inb = r.inbound,
        outb = r.outbound,
    )
}

pub fn haproxy_conf(r: &Routes) -> String {
    format!(
        "global\n  maxconn 4096\n  nbthread 2\n\
         defaults\n  mode http\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n\
         \x20 option http-keep-alive\n  http-reuse always\n\
         frontend inbound\n  bind :{INBOUND_PORT}\n  default_backend app\n\
         backend app\n  server app {inb}\n\
         frontend outbound\n  bind :{OUTBOUND_PORT}\n  default_backend dst\n\
         backend dst\n  server dst {outb}\n",
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
        }
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
}
