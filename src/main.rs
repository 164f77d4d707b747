//! The `layerize` command: parses arguments, calls the library, renders the result and maps
//! errors to exit codes (see [`layerize::error`]).

mod cli;

fn main() {
    std::process::exit(cli::run());
}
