//! A pool: `apply_async` and `map` of a registered task.
//!
//! Output:
//! apply_async: 100
//! map: [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]

fn square(x: u64) -> u64 {
    x * x
}
shoal::task!(square);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = shoal::Pool::builder().processes(2).build()?;
    let pending = pool.apply_async(square, 10);
    println!("apply_async: {}", pending.get()?);
    println!("map: {:?}", pool.map(square, 0..10u64)?);
    Ok(())
}
