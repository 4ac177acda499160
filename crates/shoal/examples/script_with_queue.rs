//! A program calls another program with arguments and a queue: any program started
//! with `shoal::process::Command`, here this same executable in its "answer" role,
//! which reads its arguments and attaches the queue with `shoal::inherited`.
//!
//! Output:
//! the program was called with ["3", "squares"]
//! answers: [0, 1, 4]
//! exit status: 0

use std::time::Duration;

use shoal::process::Command;
use shoal::Queue;

/// The called program: answers on the inherited queue.
fn answer(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let answers: Queue<Vec<String>> = shoal::inherited("answers")?;
    let n: u64 = args[0].parse()?;
    answers.put(args.to_vec())?;
    let squares = if args[1] == "squares" {
        (0..n).map(|i| (i * i).to_string()).collect()
    } else {
        Vec::new()
    };
    answers.put(squares)?;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("answer") {
        return answer(&args[1..]);
    }
    let answers: Queue<Vec<String>> = Queue::new()?;
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args(["answer", "3", "squares"]);
    cmd.pass("answers", &answers)?;
    let mut child = cmd.spawn()?;
    let wait = Duration::from_secs(60);
    println!(
        "the program was called with {:?}",
        answers.get_timeout(wait)?
    );
    let squares: Vec<u64> = answers
        .get_timeout(wait)?
        .iter()
        .map(|s| s.parse())
        .collect::<Result<_, _>>()?;
    println!("answers: {squares:?}");
    println!("exit status: {}", child.wait()?.code().unwrap_or(-1));
    Ok(())
}
