pub mod drift;
pub mod kube_events;
pub mod leader;
pub mod requeue;
pub mod run;
pub mod tasks;
