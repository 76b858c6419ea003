module example.com/cnb/go-vendored

go 1.19

require example.com/cnb/greeting v0.1.0
