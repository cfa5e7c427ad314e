fn main() -> anyhow::Result<()> {
    arus::cli::run()
}
