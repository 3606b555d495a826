module flocker.example/goclient

go 1.19
