use api_ingester::{Clients, Config, handler};
use lambda_runtime::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    etl_aws::logging::init();
    let config =
        Config::from_env().inspect_err(|e| tracing::error!(error = %e, "invalid configuration"))?;
    let clients = Clients::new(&etl_aws::clients::load_sdk_config().await, &config)?;
    run(service_fn(|event| handler(event, &clients, &config))).await
}
