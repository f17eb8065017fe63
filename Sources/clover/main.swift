print("clover")
