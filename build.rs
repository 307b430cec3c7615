//! Tells the tests whether a Redis server was given (`SHMKIT_REDIS_URL`): without one, the
//! Redis tests are reported as ignored, never as passed.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(shmkit_redis)");
    println!("cargo::rerun-if-env-changed=SHMKIT_REDIS_URL");
    if std::env::var_os("SHMKIT_REDIS_URL").is_some_and(|v| !v.is_empty()) {
        println!("cargo::rustc-cfg=shmkit_redis");
    }
}
