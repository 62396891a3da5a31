//! `sqlx::migrate!` embeds the migrations at compile time and tracks the files it
//! read, but not the directory: without this, a new migration file would not
//! trigger a rebuild.

fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
