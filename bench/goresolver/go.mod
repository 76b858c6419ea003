module cnb.example/goresolver

go 1.19
