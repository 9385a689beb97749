//! `hitl`: human approval of AI-agent actions as a controlled state transition.
//! All behaviour lives in `cli/` (terminal) and the `hitl-lib` crate (domain).

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
