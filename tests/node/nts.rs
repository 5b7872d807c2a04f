//! NTS end to end (issue 18): an NTS server that the test sets up by hand
//! (a bookworm chrony with `local stratum 8` and a certificate for its IP
//! address from a CA the test makes with the host's openssl), and clients
//! converged by ntp-provision with `nts: true` on that server and `nts_ca`:
//!
//! ```text
//!   10.123.0.50 NTS server (bookworm chrony by hand: ntsservercert, ntsserverkey, allow)
//!     |
//!   10.123.0.51 chrony (bookworm), nts_ca = the server's CA  -> synchronised, source nts: true
//!   10.123.0.52 NTPsec (bookworm), nts_ca = the server's CA  -> synchronised, source nts: true
//!   10.123.0.53 chrony (bookworm), nts_ca = another CA       -> not synchronised, key establishment failed
//!   10.123.0.54 NTPsec (bookworm), nts_ca = another CA       -> not synchronised
//! ```
//!
//! Clients name the server by its address: the certificate names it in its
//! subjectAltName. Bounded waits; a failure prints what status said.
//!
//! The site test runs, on Debian 11, 12 and 13, a chrony and an NTPsec site
//! server converged to serve NTS from the operator's certificate and key, a
//! client of the other daemon on each over NTS. On Debian 11 the clients
//! name the site server by a name in /etc/hosts: chrony 4.0 checks a
//! certificate against a name only (its plan by address is refused before
//! any change), NTPsec 1.2.0 with OpenSSL 1.1.1 matches an address only
//! against the CN of a certificate that has no DNS names.

use crate::harness::{exclusive, Node, Release};
use crate::sync::{boot_roles, converge_with_and_sync, role, Role};
use serde_json::Value;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Where the test puts the CA on each client.
const CA_ON_NODE: &str = "/etc/ntpp-test/nts-ca.pem";
/// Bound on the wait for a client given the wrong CA to say that key
/// establishment failed: chronyd retries NTS-KE within seconds.
const FAILURE_WAIT: Duration = Duration::from_secs(120);

/// Runs openssl on the host in `dir`; panics with what it said.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl on the host (scripts/test installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`NAME.pem`, `NAME.key`) valid from now for two days.
fn make_ca(dir: &Path, name: &str) {
    let (key, pem, subject) = (
        format!("{name}.key"),
        format!("{name}.pem"),
        format!("/CN=ntp-provision test {name}"),
    );
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &pem,
            "-days",
            "2",
            "-subj",
            &subject,
        ],
    );
}

/// `server.pem` and `server.key`: a certificate for `ip` (and `name`, when
/// given) signed by `ca`.
fn make_server_cert(dir: &Path, ca: &str, ip: Ipv4Addr, name: Option<&str>) {
    let dns = name.map(|n| format!(",DNS:{n}")).unwrap_or_default();
    let ext = format!("subjectAltName=IP:{ip}{dns}\nextendedKeyUsage=serverAuth\n");
    std::fs::write(dir.join("server.ext"), ext).unwrap();
    let subject = format!("/CN={ip}");
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            &subject,
        ],
    );
    let (ca_pem, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    );
}

/// The NTS server's chrony.conf: serves its own clock, and NTS.
fn nts_server_conf() -> String {
    "# The NTS test's server (tests/node/nts.rs).\n\
     local stratum 8\n\
     allow 10.123.0.0/24\n\
     driftfile /var/lib/chrony/chrony.drift\n\
     ntsservercert /etc/chrony/nts-server.pem\n\
     ntsserverkey /etc/chrony/nts-server.key\n\
     ntsdumpdir /var/lib/chrony\n\
     bindcmdaddress 127.0.0.1\n"
        .to_string()
}

/// The one configured source of a status document.
fn first_source(doc: &Value) -> &Value {
    &doc["sources"][0]
}

fn status(node: &Node) -> Value {
    let out = node.provision(&["status", "--format", "json"]);
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("status JSON: {e}\n{}\n{}", out.stdout, out.stderr))
}

/// What the daemon's own tool says of its NTS sources, for the record.
fn daemon_said(node: &Node, flavor: &str) -> String {
    let asks: &[&[&str]] = match flavor {
        "chrony" => &[
            &["chronyc", "-N", "-c", "authdata", "-a"],
            &["chronyc", "-n", "-c", "sources", "-a"],
        ],
        _ => &[
            &["ntpq", "-n", "-p"],
            &[
                "ntpq",
                "-n",
                "-c",
                "associations",
                "-c",
                "rv &1 srcadr,srchost,reach,refid,ntscookies,flash",
            ],
        ],
    };
    asks.iter()
        .map(|argv| {
            let out = node.run(argv);
            format!("$ {}\n{}{}", argv.join(" "), out.stdout, out.stderr)
        })
        .collect()
}

/// Boots the server and the clients, makes the CAs and the server's
/// certificate, and starts the server by hand.
fn nts_topology(clients: &[Role]) -> (Node, Vec<Node>, tempfile::TempDir) {
    let server_role = role("NTS server", Release::Bookworm, "chrony", "chrony", 50);
    let all: Vec<&Role> = std::iter::once(&server_role).chain(clients).collect();
    let mut nodes = boot_roles(&all);
    let client_nodes = nodes.split_off(1);
    let server = nodes.pop().unwrap();
    let dir = tempfile::tempdir().expect("temp dir");
    make_ca(dir.path(), "ca");
    make_ca(dir.path(), "other-ca");
    make_server_cert(dir.path(), "ca", server.addr(), None);
    server.apt_get(&["update"]);
    server.apt_get(&["install", "--no-install-recommends", "chrony"]);
    let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap();
    server.write("/etc/chrony/nts-server.pem", &read("server.pem"));
    server.write("/etc/chrony/nts-server.key", &read("server.key"));
    server.ok(&["chown", "root:_chrony", "/etc/chrony/nts-server.key"]);
    server.ok(&["chmod", "0640", "/etc/chrony/nts-server.key"]);
    server.write("/etc/chrony/chrony.conf", &nts_server_conf());
    server.ok(&["systemctl", "restart", "chrony.service"]);
    (server, client_nodes, dir)
}

/// The `-e` variables of an NTS client of `server` trusting the CA at CA_ON_NODE.
fn nts_vars(server: impl std::fmt::Display) -> [String; 2] {
    [
        format!("servers=[{{host: {server}, nts: true}}]"),
        format!("nts_ca={CA_ON_NODE}"),
    ]
}

#[test]
fn nts_clients_synchronise_with_the_right_ca_and_say_key_establishment_failed_with_another() {
    let _guard = exclusive();
    let t0 = Instant::now();
    let clients = [
        role("NTS client", Release::Bookworm, "chrony", "chrony", 51),
        role("NTS client", Release::Bookworm, "ntpsec", "ntpsec", 52),
        role("wrong-CA client", Release::Bookworm, "chrony", "chrony", 53),
        role("wrong-CA client", Release::Bookworm, "ntpsec", "ntpsec", 54),
    ];
    let (server, client_nodes, dir) = nts_topology(&clients);
    eprintln!("[nts] server ready at {:.1?}", t0.elapsed());
    let up = server.addr();
    let ca = std::fs::read_to_string(dir.path().join("ca.pem")).unwrap();
    let other = std::fs::read_to_string(dir.path().join("other-ca.pem")).unwrap();
    let vars = nts_vars(up);
    let vars: Vec<&str> = vars.iter().map(String::as_str).collect();

    std::thread::scope(|s| {
        for (r, node) in clients.iter().zip(&client_nodes).take(2) {
            let (vars, ca) = (&vars, &ca);
            s.spawn(move || {
                node.write(CA_ON_NODE, ca);
                let t = converge_with_and_sync(node, r, up, vars).unwrap_or_else(|e| {
                    panic!("{e}\n{}", daemon_said(node, r.flavor));
                });
                let doc = status(node);
                let source = first_source(&doc);
                assert_eq!(
                    (&source["nts"], &source["nts_failure"]),
                    (&Value::Bool(true), &Value::Null),
                    "{} ({}): the source is not authenticated by NTS:\n{doc:#}\n{}",
                    r.what,
                    r.flavor,
                    daemon_said(node, r.flavor)
                );
                let human = node.provision(&["status"]);
                assert!(human.stdout.contains("selected, NTS"), "{}", human.stdout);
                eprintln!(
                    "[nts] {} {}: apply {:.1?}, synchronised {:.1?} after apply started\n{}",
                    r.what,
                    r.flavor,
                    t.apply,
                    t.synchronised,
                    daemon_said(node, r.flavor)
                );
                let daemon = format!("daemon={}", r.daemon);
                node.rerun_clean(&["-e", &daemon, "-e", vars[0], "-e", vars[1]]);
            });
        }
        for (r, node) in clients.iter().zip(&client_nodes).skip(2) {
            let (vars, other) = (&vars, &other);
            s.spawn(move || {
                node.write(CA_ON_NODE, other);
                let daemon = format!("daemon={}", r.daemon);
                let out = node.provision(&["apply", "-e", &daemon, "-e", vars[0], "-e", vars[1]]);
                assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
                let deadline = Instant::now() + FAILURE_WAIT;
                let mut doc = status(node);
                while Instant::now() < deadline && first_source(&doc)["nts_failure"].is_null() {
                    assert_ne!(doc["synchronised"], true, "{} synchronised: {doc:#}", r.what);
                    std::thread::sleep(Duration::from_secs(1));
                    doc = status(node);
                }
                let said = daemon_said(node, r.flavor);
                eprintln!("[nts] {} {} after {:.1?}:\n{doc:#}\n{said}", r.what, r.flavor, t0.elapsed());
                assert_ne!(doc["synchronised"], true, "{doc:#}");
                assert_eq!(first_source(&doc)["nts"], false, "{doc:#}");
                let failure = first_source(&doc)["nts_failure"].as_str().unwrap_or("");
                assert!(
                    failure.contains("NTS key establishment failed"),
                    "{} ({}): status does not say key establishment failed within {FAILURE_WAIT:?}:\n{doc:#}\n{said}",
                    r.what,
                    r.flavor
                );
            });
        }
    });
    eprintln!("[nts] done at {:.1?}", t0.elapsed());
}

/// Installs a certificate for the node's address and `name` (signed by
/// `ca` in `dir`) and its key at `cert`, `key` on the node, the key
/// root-only (0600).
fn install_server_cert(node: &Node, dir: &Path, name: &str, cert: &str, key: &str) {
    make_server_cert(dir, "ca", node.addr(), Some(name));
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    node.write(cert, &read("server.pem"));
    node.write(key, &read("server.key"));
    node.ok(&["chmod", "0600", key]);
}

/// A chrony site server with an NTPsec client, then an NTPsec site server
/// with a chrony client, on `release`, from 10.123.0.`first`.
fn site_roles(release: Release, first: u8) -> [Role; 4] {
    [
        role("NTS site server", release, "chrony", "chrony", first),
        role(
            "client of the chrony site",
            release,
            "ntpsec",
            "ntpsec",
            first + 1,
        ),
        role("NTS site server", release, "ntpsec", "ntpsec", first + 2),
        role(
            "client of the NTPsec site",
            release,
            "chrony",
            "chrony",
            first + 3,
        ),
    ]
}

/// The name Debian 11's clients know their site server by (`nts_host_for`
/// says why): in the client's /etc/hosts and the server's certificate.
fn site_name(site: &Node) -> String {
    format!("nts-site-{}.ntpp.test", site.addr().octets()[3])
}

/// Converges `site` as an NTS site server of `up` for 10.123.0.0/24 with
/// the operator's certificate and key at `cert`, `key`: first without
/// NTS, so the daemon's user exists, then with the key root-only (refused,
/// nothing changed), then with the key given to that user's group.
fn serve_nts(site: &Node, r: &Role, up: Ipv4Addr, cert: &str, key: &str) {
    let servers = format!("servers=[{up}]");
    let clients = "clients=[10.123.0.0/24]".to_string();
    let (cert_var, key_var) = (
        format!("nts_server_cert={cert}"),
        format!("nts_server_key={key}"),
    );
    converge_with_and_sync(site, r, up, &[&servers, &clients]).unwrap_or_else(|e| panic!("{e}"));
    let daemon = format!("daemon={}", r.daemon);
    let serve = [
        "apply", "-e", &daemon, "-e", &servers, "-e", &clients, "-e", &cert_var, "-e", &key_var,
    ];
    refused_with_nothing_changed(site, &serve, "is not readable by");
    let user = if r.flavor == "chrony" {
        "_chrony"
    } else {
        "ntpsec"
    };
    site.ok(&["chown", &format!("root:{user}"), key]);
    site.ok(&["chmod", "0640", key]);
    let t = converge_with_and_sync(site, r, up, &[&servers, &clients, &cert_var, &key_var])
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "[nts] {} {} {}: serving NTS, synchronised {:.1?} after apply started",
        r.release.name(),
        r.what,
        r.flavor,
        t.synchronised
    );
}

/// The host a client names its NTS site server by. On Debian 11 it is the
/// site's name, in the client's /etc/hosts: chrony 4.0 checks a certificate
/// against a name only (its plan by address is refused first, before any
/// change), and NTPsec 1.2.0 asks OpenSSL 1.1.1 to match the host as a
/// name, which an address only matches as the CN of a certificate without
/// DNS names (OpenSSL 3 matches it against the IP names).
fn nts_host_for(client: &Node, r: &Role, site: &Node) -> String {
    if r.release != Release::Bullseye {
        return site.addr().to_string();
    }
    if r.flavor == "chrony" {
        refused_by_address(client, r, site);
    }
    let name = site_name(site);
    let hosts = client.read("/etc/hosts").unwrap_or_default();
    client.write("/etc/hosts", &format!("{hosts}{} {name}\n", site.addr()));
    name
}

/// chrony 4.0 given its NTS server by address: refused, nothing changed.
fn refused_by_address(client: &Node, r: &Role, site: &Node) {
    let vars = nts_vars(site.addr());
    let daemon = format!("daemon={}", r.daemon);
    let apply = ["apply", "-e", &daemon, "-e", &vars[0], "-e", &vars[1]];
    refused_with_nothing_changed(client, &apply, "an IP address, but chrony 4.0");
}

/// Runs ntp-provision with `args` on `node`: it must fail saying `says`
/// and leave the node as it was.
fn refused_with_nothing_changed(node: &Node, args: &[&str], says: &str) {
    let before = node.snapshot();
    let out = node.provision(args);
    let said = format!("{}{}", out.stdout, out.stderr);
    assert_ne!(out.code, 0, "{said}");
    assert!(said.contains(says), "{said}");
    assert_eq!(
        crate::harness::snapshot_diff(&before, &node.snapshot()),
        Vec::<String>::new()
    );
}

#[test]
fn nts_site_servers_converged_by_ntp_provision_serve_nts_to_their_clients() {
    let _guard = exclusive();
    let t0 = Instant::now();
    // Per release, each site server, then its client.
    let roles: Vec<Role> = [
        (Release::Bookworm, 60),
        (Release::Bullseye, 64),
        (Release::Trixie, 68),
    ]
    .into_iter()
    .flat_map(|(release, first)| site_roles(release, first))
    .collect();
    let (upstream, nodes, dir) = nts_topology(&roles);
    eprintln!("[nts] upstream ready at {:.1?}", t0.elapsed());
    let up = upstream.addr();
    let ca = std::fs::read_to_string(dir.path().join("ca.pem")).unwrap();
    let (cert, key) = ("/etc/ntpp-test/nts-site.pem", "/etc/ntpp-test/nts-site.key");
    std::thread::scope(|s| {
        for (i, (pair, nodes)) in roles.chunks(2).zip(nodes.chunks(2)).enumerate() {
            let ((site_role, client_role), (site, client)) =
                ((&pair[0], &pair[1]), (&nodes[0], &nodes[1]));
            let sub = dir.path().join(format!("site{i}"));
            std::fs::create_dir_all(&sub).unwrap();
            for f in ["ca.pem", "ca.key"] {
                std::fs::copy(dir.path().join(f), sub.join(f)).unwrap();
            }
            let ca = &ca;
            s.spawn(move || {
                let name = site_name(site);
                install_server_cert(site, &sub, &name, cert, key);
                serve_nts(site, site_role, up, cert, key);
                client.write(CA_ON_NODE, ca);
                let host = nts_host_for(client, client_role, site);
                let vars = nts_vars(&host);
                let t =
                    converge_with_and_sync(client, client_role, site.addr(), &[&vars[0], &vars[1]])
                        .unwrap_or_else(|e| {
                            panic!("{e}\n{}", daemon_said(client, client_role.flavor))
                        });
                let doc = status(client);
                assert_eq!(
                    first_source(&doc)["nts"],
                    true,
                    "{} ({}): not authenticated by NTS:\n{doc:#}\n{}",
                    client_role.what,
                    client_role.flavor,
                    daemon_said(client, client_role.flavor)
                );
                eprintln!(
                    "[nts] {} {} {}: synchronised over NTS with {host} {:.1?} after apply started",
                    client_role.release.name(),
                    client_role.what,
                    client_role.flavor,
                    t.synchronised
                );
            });
        }
    });
    eprintln!("[nts] done at {:.1?}", t0.elapsed());
}
