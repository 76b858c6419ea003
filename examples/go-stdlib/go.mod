module example.com/cnb/go-stdlib

go 1.19
