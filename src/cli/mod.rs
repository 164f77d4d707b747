//! Command-line front end: arguments ([`args`]), one function per subcommand, output
//! rendering ([`output`]). The library does the work; nothing here decides a layer byte.

mod args;
mod commands;
mod output;

use clap::Parser;
use layerize::error::{EXIT_OK, EXIT_USAGE};

/// Runs the command line and returns the process exit code.
pub fn run() -> i32 {
    let cli = match args::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
            let _ = e.print();
            return code;
        }
    };
    match commands::dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("layerize: error: {e}");
            e.exit_code()
        }
    }
}
