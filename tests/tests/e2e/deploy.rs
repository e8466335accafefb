//! Static checks of docker-compose.yml and the Kubernetes manifests: they
//! parse, and their names, ports and variables match what the server reads.

use clap::CommandFactory;
use coffer_server::config::Config;
use coffer_tests::server::workspace_root;
use serde::Deserialize;
use serde_yaml::Value;
use std::collections::BTreeMap;

/// Every environment variable coffer-server reads.
fn known_var(name: &str) -> bool {
    let from_flags = Config::command()
        .get_arguments()
        .filter_map(|a| a.get_env())
        .any(|e| e == name);
    let indexed = ["MINIO_ENDPOINT_", "MINIO_ACCESS_KEY_", "MINIO_SECRET_KEY_"]
        .iter()
        .any(|p| {
            name.strip_prefix(p)
                .is_some_and(|i| i.parse::<u32>().is_ok())
        });
    from_flags || indexed
}

fn load(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(workspace_root().join(path)).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| {
            let mut v = Value::deserialize(doc).unwrap_or_else(|e| panic!("{path}: {e}"));
            v.apply_merge().unwrap();
            v
        })
        .collect()
}

/// The Secrets `deploy/k8s/make-secrets.sh` creates: name -> key -> the
/// value as the script writes it (quotes removed).
fn script_secrets() -> BTreeMap<String, BTreeMap<String, String>> {
    let path = workspace_root().join("deploy/k8s/make-secrets.sh");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut current = None;
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("kubectl create secret generic ") {
            let name = rest.split_whitespace().next().unwrap().to_string();
            out.entry(name.clone()).or_default();
            current = Some(name);
        } else if let Some(pair) = line.strip_prefix("--from-literal=") {
            let pair = pair.trim_end_matches('\\').trim();
            let (k, v) = pair.split_once('=').unwrap();
            let name = current.clone().expect("a literal outside a secret");
            out.get_mut(&name)
                .unwrap()
                .insert(k.to_string(), v.trim_matches('"').to_string());
        } else if line.is_empty() {
            current = None;
        }
    }
    out
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

#[test]
fn compose_file_wires_three_minio_nodes_to_the_server() {
    let docs = load("docker-compose.yml");
    let services = docs[0]["services"].as_mapping().unwrap();
    let coffer = &docs[0]["services"]["coffer"];
    let env: BTreeMap<String, String> = coffer["environment"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(k, v)| (s(k), s(v)))
        .collect();
    for name in env.keys() {
        assert!(
            known_var(name),
            "docker-compose sets {name}, which coffer-server does not read"
        );
    }
    for i in 1..=3 {
        let endpoint = &env[&format!("MINIO_ENDPOINT_{i}")];
        let (host, port) = endpoint.split_once(':').unwrap();
        assert!(services.contains_key(host), "{endpoint} names no service");
        assert_eq!(port, "9000");
        let svc = &docs[0]["services"][host];
        assert!(s(&svc["image"]).starts_with("minio/minio"));
        assert!(
            svc.get("ports").is_none(),
            "{host} publishes a port: the storage nodes stay private"
        );
        assert!(svc["command"].as_str().unwrap().contains("server /data"));
    }
    let port = &env["PORT"];
    let ports: Vec<String> = coffer["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(s)
        .collect();
    assert!(ports.contains(&format!("{port}:{port}")), "{ports:?}");
    assert_eq!(port, "5000");
    // The metadata lives in the compose file's PostgreSQL, which the
    // server waits for.
    let url = &env["COFFER_DATABASE_URL"];
    let host = url
        .rsplit_once('@')
        .and_then(|(_, rest)| rest.split(['/', ':']).next())
        .expect("a host in COFFER_DATABASE_URL");
    assert!(url.starts_with("postgres://"), "{url}");
    assert!(s(&docs[0]["services"][host]["image"]).starts_with("postgres"));
    assert_eq!(
        s(&coffer["depends_on"][host]["condition"]),
        "service_healthy"
    );
    // Authentication stays on, and a fresh deployment has its first admin
    // (required: compose refuses to start without it).
    assert!(
        env.get("COFFER_ADMIN_PASSWORD")
            .is_some_and(|v| v.contains(":?")),
        "no required COFFER_ADMIN_PASSWORD"
    );
    assert!(
        !env.contains_key("COFFER_AUTH"),
        "authentication switched off"
    );
    let check = format!("{:?}", coffer["healthcheck"]["test"]);
    assert!(check.contains("/readyz"), "{check}");
    let dockerfile = s(&coffer["build"]["dockerfile"]);
    let docker = std::fs::read_to_string(workspace_root().join(&dockerfile))
        .unwrap_or_else(|e| panic!("{dockerfile}: {e}"));
    // The server runs as a user of its own, not root.
    let runtime = &docker[docker.rfind("FROM ").expect("a final stage")..];
    let user = runtime
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("USER "))
        .expect("the image sets a USER");
    assert!(!matches!(user.trim(), "root" | "0"), "USER {user}");
    // No credential has a default: compose refuses to start without them.
    let text = std::fs::read_to_string(workspace_root().join("docker-compose.yml")).unwrap();
    for (i, _) in text.match_indices("${") {
        let var = &text[i..text[i..].find('}').map(|e| i + e + 1).unwrap()];
        assert!(
            var.contains(":?"),
            "{var} has a default or may be empty; required values use ${{NAME:?message}}"
        );
    }
    // The image's server carries the web app: built before the server.
    let web = docker
        .find("cargo run --release -p coffer-web-build")
        .expect("the image builds the web app");
    // What ships is built with the `dist` profile (Cargo.toml).
    let server = docker
        .find("cargo build --profile dist -p coffer-server")
        .expect("the image builds the server");
    assert!(
        docker.contains("/src/target/dist/coffer-server"),
        "the image copies the dist build"
    );
    assert!(web < server, "the web app must be built before the server");
}

#[test]
fn kubernetes_manifests_agree_with_each_other_and_the_server() {
    let sh = std::process::Command::new("sh")
        .arg("-n")
        .arg(workspace_root().join("deploy/k8s/make-secrets.sh"))
        .status()
        .unwrap();
    assert!(sh.success(), "make-secrets.sh does not parse");
    let mut docs = load("deploy/k8s/minio.yaml");
    docs.extend(load("deploy/k8s/coffer.yaml"));
    docs.extend(load("deploy/k8s/postgres.yaml"));
    let find = |kind: &str, name: &str| {
        docs.iter()
            .find(|d| {
                d["kind"].as_str() == Some(kind) && d["metadata"]["name"].as_str() == Some(name)
            })
            .unwrap_or_else(|| panic!("no {kind} {name}"))
            .clone()
    };
    // No Secret is shipped: the script makes each, from random values.
    assert!(
        !docs.iter().any(|d| d["kind"].as_str() == Some("Secret")),
        "a manifest ships a Secret, so a deployment could run on its defaults"
    );
    let secrets = script_secrets();
    assert_eq!(
        secrets.keys().collect::<Vec<_>>(),
        ["coffer-auth", "coffer-db", "coffer-s3"]
    );
    for (name, key) in [
        ("coffer-db", "POSTGRES_PASSWORD"),
        ("coffer-s3", "MINIO_SECRET_KEY"),
        ("coffer-auth", "COFFER_ADMIN_PASSWORD"),
    ] {
        let v = &secrets[name][key];
        let var = v.strip_prefix('$').expect("a variable");
        let script =
            std::fs::read_to_string(workspace_root().join("deploy/k8s/make-secrets.sh")).unwrap();
        assert!(
            script.contains(&format!("{var}=$(random)")),
            "{name}.{key} is not drawn at random"
        );
    }
    let secret_has = |name: &str, key: &str| secrets.get(name).is_some_and(|s| s.contains_key(key));
    // Every secretKeyRef in any manifest names a key the script makes.
    for d in &docs {
        if let Some(containers) = d["spec"]["template"]["spec"]["containers"].as_sequence() {
            for c in containers {
                for e in c["env"].as_sequence().into_iter().flatten() {
                    if let Some(key) = e["valueFrom"]["secretKeyRef"]["key"].as_str() {
                        let named = s(&e["valueFrom"]["secretKeyRef"]["name"]);
                        assert!(
                            secret_has(&named, key),
                            "make-secrets.sh makes no {named}.{key}"
                        );
                    }
                }
            }
        }
    }
    let minio = find("StatefulSet", "minio");
    let minio_svc = find("Service", "minio");
    assert_eq!(s(&minio["spec"]["serviceName"]), "minio");
    let replicas: usize = s(&minio["spec"]["replicas"]).parse().unwrap();
    let db_secret = &secrets["coffer-db"];

    // Stateless replicas on the shared database.
    let coffer = find("Deployment", "coffer");
    let coffer_replicas: usize = s(&coffer["spec"]["replicas"]).parse().unwrap();
    assert!(coffer_replicas >= 2, "{coffer_replicas} coffer replicas");
    let container = &coffer["spec"]["template"]["spec"]["containers"][0];
    let mut env = BTreeMap::new();
    for e in container["env"].as_sequence().unwrap() {
        let name = s(&e["name"]);
        assert!(
            known_var(&name),
            "coffer.yaml sets {name}, which coffer-server does not read"
        );
        env.insert(name, e.get("value").map(s).unwrap_or_default());
    }
    for i in 1..=replicas {
        let endpoint = &env[&format!("MINIO_ENDPOINT_{i}")];
        assert_eq!(
            endpoint,
            &format!(
                "minio-{}.minio:{}",
                i - 1,
                s(&minio_svc["spec"]["ports"][0]["port"])
            )
        );
    }
    let port = &env["PORT"];
    assert_eq!(&s(&container["ports"][0]["containerPort"]), port);
    assert_eq!(
        &s(&find("Service", "coffer")["spec"]["ports"][0]["targetPort"]),
        port
    );
    assert_eq!(
        container["readinessProbe"]["httpGet"]["path"],
        Value::from("/readyz")
    );
    assert_eq!(
        container["livenessProbe"]["httpGet"]["path"],
        Value::from("/healthz")
    );
    // The database URL names the PostgreSQL Service and its port, and the
    // StatefulSet takes the same credentials.
    assert!(env.contains_key("COFFER_DATABASE_URL"));
    let url = db_secret["COFFER_DATABASE_URL"].clone();
    let pg_svc = find("Service", "postgres");
    let pg_port = s(&pg_svc["spec"]["ports"][0]["port"]);
    assert!(
        url.contains(&format!("@postgres:{pg_port}/")),
        "{url} does not reach the postgres Service"
    );
    let user = &db_secret["POSTGRES_USER"];
    let password = &db_secret["POSTGRES_PASSWORD"];
    assert!(
        url.starts_with(&format!("postgres://{user}:{password}@")),
        "{url}"
    );
    // Authentication stays on, and a fresh deployment has its first admin.
    assert!(env.contains_key("COFFER_ADMIN_PASSWORD"), "no first admin");
    assert!(
        !env.contains_key("COFFER_AUTH"),
        "authentication switched off"
    );
    // The download budget (or its default) fits the memory limit twice
    // over: the rest is for uploads, the metadata and the network.
    let limit = s(&container["resources"]["limits"]["memory"]);
    let limit_mib: u64 = match limit.strip_suffix("Gi") {
        Some(g) => g.parse::<u64>().unwrap() * 1024,
        None => limit
            .strip_suffix("Mi")
            .expect("a memory limit in Mi or Gi")
            .parse()
            .unwrap(),
    };
    let budget: u64 = env
        .get("COFFER_DOWNLOAD_MEMORY_MIB")
        .map_or(256, |v| v.parse().unwrap());
    assert!(
        budget * 2 <= limit_mib,
        "{budget} MiB of downloads in {limit}"
    );
    let pod = &coffer["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], Value::from(true));
    assert_ne!(s(&pod["securityContext"]["runAsUser"]), "0");
    let pg = find("StatefulSet", "postgres");
    assert_eq!(s(&pg["spec"]["serviceName"]), "postgres");
}
