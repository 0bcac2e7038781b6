use lambda_runtime::{Error, run, service_fn};
use probe_lambda::{Probe, handler};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .with_ansi(false)
        .without_time()
        .init();
    let probe = Probe::from_env().await;
    run(service_fn(|event| handler(&probe, event))).await
}
