//! The make-like driver.
fn main() {}
