use lambda_runtime::{Error, run, service_fn};
use s3_processor::{Clients, Config, handler};

#[tokio::main]
async fn main() -> Result<(), Error> {
    etl_core::tune_allocator();
    etl_aws::logging::init();
    let config =
        Config::from_env().inspect_err(|e| tracing::error!(error = %e, "invalid configuration"))?;
    let clients = Clients::new(&etl_aws::clients::load_sdk_config().await);
    run(service_fn(|event| handler(event, &clients, &config))).await
}
