import bb.data_smart


def init():
    return bb.data_smart.DataSmart()
