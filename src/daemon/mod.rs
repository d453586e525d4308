pub mod drift;
pub mod kube_events;
pub mod leader;
pub mod run;
pub mod tasks;
