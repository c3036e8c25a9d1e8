"""Rating models: predict a user's numeric rating of an item (RMSE, MAE), and rank by it."""
