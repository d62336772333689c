mod connectwise_client;
