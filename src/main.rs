/// Ingest allocates and frees a few small values per event (the parsed
/// document, the event, its encoded record; in librdkafka, the message and
/// each of its headers) and a few large buffers per request; glibc's
/// allocator spent about a quarter of batch ingest's CPU on them,
/// consolidating its fast bins at every large free. With the `override`
/// feature mimalloc also serves the C libraries' `malloc` and `free`.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    arus::cli::run()
}
