//! Tells the integration tests whether a PostgreSQL server was given
//! (`SPOOLMQ_TEST_PG_URL`, set by `.ci/run` or `scripts/pg-server.sh`): the
//! postgres store's tests are compiled in only then (`cfg(pg_server)`, see
//! tests/it/main.rs). Nothing else in the package reads it.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(pg_server)");
    println!("cargo::rerun-if-env-changed=SPOOLMQ_TEST_PG_URL");
    println!("cargo::rerun-if-changed=build.rs");
    if std::env::var_os("SPOOLMQ_TEST_PG_URL").is_some_and(|v| !v.is_empty()) {
        println!("cargo::rustc-cfg=pg_server");
    }
}
