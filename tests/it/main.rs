mod render;
mod schedule;
